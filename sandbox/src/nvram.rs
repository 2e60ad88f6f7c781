//! The NVRAM: ZRT's INI-like configuration (spec/zerovm.md §10) — args, environment,
//! tar mounts, device mapping, debug verbosity and clock — parsed into [`Nvram`] and rendered back.
//!
//! Syntax: `[section]` headers, then one record per line made of
//! comma-separated `key=value` pairs (`channel=/dev/stdin, mode=char`); keys
//! and values are trimmed; `\xHH` in a value stands for the byte `HH` (that is
//! how `,`, spaces and line breaks get in). Blank lines and lines starting
//! with `#` are skipped.
//!
//! Two readings:
//! - [`Nvram::parse_lenient`] behaves like ZRT: whatever ZRT skipped (unknown
//!   sections and keys, malformed records, `access=rw`, anything past the
//!   limits) is skipped, and each skip is reported as a diagnostic naming its
//!   line, for the engine to log.
//! - [`Nvram::parse`] refuses the first such problem; zvsh and tests use it.
//!
//! Decisions (ZRT was the only reader; now the engine is):
//! - `\xHH` is decoded in every value, not only in `[args]` and `[env]`; other
//!   backslashes are literal.
//! - A record is one line. (ZRT collected keys until a record was complete,
//!   across line breaks.) Section names match exactly (ZRT matched prefixes).
//! - `#` starts a comment only at the start of a line (ZRT: anywhere outside
//!   a value it was reading); the renderer escapes `#` anyway.
//! - Repeated sections add up; `[args]` records append words; for `[debug]`
//!   and `[time]` the last record wins; within a record the first of a
//!   repeated key wins (as in ZRT).

use std::fmt;

/// ZRT read at most this many bytes; the rest is ignored.
pub const FILE_LIMIT: usize = 10240;
/// At most this many section headers.
pub const SECTIONS_LIMIT: usize = 7;
/// At most this many records per section, and arguments in `[args]`.
pub const RECORDS_LIMIT: usize = 100;
/// At most this many `key=value` pairs per record.
pub const KEYS_LIMIT: usize = 5;
/// Longest key name.
pub const KEY_NAME_LIMIT: usize = 20;

/// A parsed NVRAM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nvram {
    /// `[args]`: argv, `argv[0]` first.
    pub args: Vec<String>,
    /// `[env]`: environment variables in file order.
    pub env: Vec<EnvVar>,
    /// `[fstab]`: tar images to mount (ro) or to write at exit (wo).
    pub fstab: Vec<FstabEntry>,
    /// `[mapping]`: the file type each channel device shows under `/dev`.
    pub mapping: Vec<Mapping>,
    /// `[debug] verbosity=<n>`.
    pub debug_verbosity: Option<i64>,
    /// `[time] seconds=<unix time>`: initial guest clock.
    pub time: Option<i64>,
    /// `[precache] precache=<…>`: ZRT-internal; kept, unused.
    pub precache: Option<String>,
}

/// One `[env]` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Variable name (non-empty).
    pub name: String,
    /// Value (may be empty).
    pub value: String,
}

/// Direction of an `[fstab]` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `ro`: unpack the channel's tar under the mount point at start.
    ReadOnly,
    /// `wo`: pack the files under the mount point into the channel at exit.
    WriteOnly,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "ro",
            Access::WriteOnly => "wo",
        }
    }
}

/// The default (and only supported) `fsname`.
pub const FSNAME_TAR: &str = "tar";

/// One `[fstab]` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    /// The channel alias holding the image (`/dev/…`).
    pub channel: String,
    /// Where it appears in the guest file system.
    pub mountpoint: String,
    /// `ro` or `wo`.
    pub access: Access,
    /// `removable=yes`: may be re-mounted when a daemon-forked session
    /// re-reads fstab. Default `no`.
    pub removable: bool,
    /// File system name, default `tar` (compared case-insensitively, as ZRT).
    pub fsname: String,
}

impl FstabEntry {
    /// Whether this is a tar image (the only kind the engine mounts).
    pub fn is_tar(&self) -> bool {
        self.fsname.eq_ignore_ascii_case(FSNAME_TAR)
    }
}

/// File type a channel device shows under `/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MappingMode {
    /// `char`: S_IFCHR (a tty, say).
    Char,
    /// `pipe`: S_IFIFO.
    Pipe,
    /// `file`: S_IFREG.
    File,
}

impl MappingMode {
    fn as_str(self) -> &'static str {
        match self {
            MappingMode::Char => "char",
            MappingMode::Pipe => "pipe",
            MappingMode::File => "file",
        }
    }
}

/// One `[mapping]` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The channel alias.
    pub channel: String,
    /// How it shows.
    pub mode: MappingMode,
}

/// A problem on one line of an NVRAM; `Display` is `NVRAM line <n>: <what>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("NVRAM line {line}: {kind}")]
pub struct NvramError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub kind: NvramErrorKind,
}

/// What can be wrong in an NVRAM.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NvramErrorKind {
    /// The text is longer than [`FILE_LIMIT`]; the line is where it is cut.
    #[error("the file is larger than {FILE_LIMIT} bytes; the rest is ignored")]
    TooLarge,
    /// The line is not UTF-8.
    #[error("the line is not UTF-8")]
    NotUtf8,
    /// `[` without `]`, or text after `]`.
    #[error("malformed section header")]
    BadHeader,
    /// A section no one reads.
    #[error("unknown section [{0}]")]
    UnknownSection(String),
    /// More than [`SECTIONS_LIMIT`] section headers.
    #[error("more than {SECTIONS_LIMIT} sections")]
    TooManySections,
    /// A record before the first section header.
    #[error("record outside of any section")]
    OutsideSection,
    /// More than [`RECORDS_LIMIT`] records in one section.
    #[error("more than {RECORDS_LIMIT} records in [{0}]")]
    TooManyRecords(&'static str),
    /// More than [`RECORDS_LIMIT`] arguments.
    #[error("more than {RECORDS_LIMIT} arguments")]
    TooManyArgs,
    /// A comma-separated piece without `=`.
    #[error("'{0}' is not key=value")]
    NotKeyValue(String),
    /// More than [`KEYS_LIMIT`] pairs in a record.
    #[error("more than {KEYS_LIMIT} keys in a record")]
    TooManyKeys,
    /// A key longer than [`KEY_NAME_LIMIT`].
    #[error("key '{0}' is longer than {KEY_NAME_LIMIT} characters")]
    KeyTooLong(String),
    /// A key the section does not have.
    #[error("unknown key '{key}' in [{section}]")]
    UnknownKey {
        /// The section.
        section: &'static str,
        /// The key as written.
        key: String,
    },
    /// A key given twice in one record (the first is used).
    #[error("duplicate key '{0}'")]
    DuplicateKey(&'static str),
    /// A record without a mandatory key.
    #[error("[{section}] record without '{key}'")]
    MissingKey {
        /// The section.
        section: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A value outside its allowed set, or empty where it may not be.
    #[error("invalid {key} '{value}' (expected {expected})")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The value as written (unescaped).
        value: String,
        /// What would do.
        expected: &'static str,
    },
    /// `\xHH` escapes that do not decode to UTF-8.
    #[error("the value of '{0}' is not UTF-8 once unescaped")]
    BadEscape(&'static str),
}

/// Why an [`Nvram`] cannot be written as text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// NVRAM has no way to write an empty argument.
    #[error("argument {0} is empty; NVRAM cannot express an empty argument")]
    EmptyArgument(usize),
    /// The text would not read back (a limit, an empty name…).
    #[error("the rendered NVRAM would not read back: {0}")]
    Unreadable(NvramError),
    /// The text would read back as something else.
    #[error("the NVRAM cannot be expressed as text")]
    NotRepresentable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Args,
    Env,
    Fstab,
    Mapping,
    Debug,
    Time,
    Precache,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::Args,
        Section::Env,
        Section::Fstab,
        Section::Mapping,
        Section::Debug,
        Section::Time,
        Section::Precache,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::Args => "args",
            Section::Env => "env",
            Section::Fstab => "fstab",
            Section::Mapping => "mapping",
            Section::Debug => "debug",
            Section::Time => "time",
            Section::Precache => "precache",
        }
    }

    /// The keys of a record; all mandatory except those with a default.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Section::Args => &["args"],
            Section::Env => &["name", "value"],
            Section::Fstab => &["channel", "mountpoint", "access", "removable", "fsname"],
            Section::Mapping => &["channel", "mode"],
            Section::Debug => &["verbosity"],
            Section::Time => &["seconds"],
            Section::Precache => &["precache"],
        }
    }

    fn optional(self, key: &str) -> bool {
        self == Section::Fstab && matches!(key, "removable" | "fsname")
    }
}

/// Whitespace trimmed around keys, values and tokens.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Decodes `\xHH` (either case); any other backslash is literal.
fn unescape(key: &'static str, raw: &str) -> Result<String, NvramErrorKind> {
    if !raw.contains('\\') {
        return Ok(raw.to_string());
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
            let hex = |j: usize| b.get(j).and_then(|c| char::from(*c).to_digit(16));
            if let (Some(hi), Some(lo)) = (hex(i + 2), hex(i + 3)) {
                // Two hex digits make one byte.
                out.push((hi * 16 + lo) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| NvramErrorKind::BadEscape(key))
}

/// Escapes what a value cannot hold raw: `\`, `,`, `#`, `"`, whitespace and
/// control characters (ZeroCloud escaped `,`, zpm `\ " , space newline`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '#' | '"') || is_space(c) || c.is_ascii_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// State of the reader.
struct Reader {
    nvram: Nvram,
    diagnostics: Vec<NvramError>,
    sections_seen: usize,
    /// `None` before any header; `Some(None)` inside a skipped section.
    current: Option<Option<Section>>,
    records: [usize; Section::ALL.len()],
}

impl Reader {
    fn note(&mut self, line: usize, kind: NvramErrorKind) {
        self.diagnostics.push(NvramError { line, kind });
    }

    fn header(&mut self, line: usize, text: &str) {
        let Some(close) = text.find(']') else {
            self.note(line, NvramErrorKind::BadHeader);
            self.current = Some(None);
            return;
        };
        if !strip(&text[close + 1..]).is_empty() {
            self.note(line, NvramErrorKind::BadHeader);
        }
        self.sections_seen += 1;
        if self.sections_seen > SECTIONS_LIMIT {
            self.note(line, NvramErrorKind::TooManySections);
            self.current = Some(None);
            return;
        }
        let name = strip(&text[1..close]);
        let section = Section::ALL.into_iter().find(|s| s.name() == name);
        if section.is_none() {
            self.note(line, NvramErrorKind::UnknownSection(name.to_string()));
        }
        self.current = Some(section);
    }

    fn record(&mut self, line: usize, text: &str) {
        let section = match self.current {
            None => return self.note(line, NvramErrorKind::OutsideSection),
            Some(None) => return,
            Some(Some(s)) => s,
        };
        let keys = section.keys();
        let mut values: Vec<Option<&str>> = vec![None; keys.len()];
        let tokens: Vec<&str> = text
            .split(',')
            .map(strip)
            .filter(|t| !t.is_empty())
            .collect();
        if tokens.iter().filter(|t| t.contains('=')).count() > KEYS_LIMIT {
            self.note(line, NvramErrorKind::TooManyKeys);
        }
        let mut pairs = 0;
        for token in tokens {
            let Some((key, value)) = token.split_once('=') else {
                self.note(line, NvramErrorKind::NotKeyValue(token.to_string()));
                continue;
            };
            pairs += 1;
            if pairs > KEYS_LIMIT {
                // Reported above; the extra pairs are dropped.
                break;
            }
            let key = strip(key);
            if key.chars().count() > KEY_NAME_LIMIT {
                self.note(line, NvramErrorKind::KeyTooLong(key.to_string()));
                continue;
            }
            let Some(index) = keys.iter().position(|k| *k == key) else {
                self.note(
                    line,
                    NvramErrorKind::UnknownKey {
                        section: section.name(),
                        key: key.to_string(),
                    },
                );
                continue;
            };
            if values[index].is_some() {
                self.note(line, NvramErrorKind::DuplicateKey(keys[index]));
                continue;
            }
            values[index] = Some(strip(value));
        }
        if let Some(missing) = keys
            .iter()
            .zip(&values)
            .find(|(k, v)| v.is_none() && !section.optional(k))
        {
            return self.note(
                line,
                NvramErrorKind::MissingKey {
                    section: section.name(),
                    key: missing.0,
                },
            );
        }
        let count = &mut self.records[section as usize];
        *count += 1;
        if *count > RECORDS_LIMIT {
            return self.note(line, NvramErrorKind::TooManyRecords(section.name()));
        }
        if let Err(kind) = self.apply(section, &values) {
            self.note(line, kind);
        }
    }

    /// Turns a complete record into its typed form; an error skips the record.
    fn apply(&mut self, section: Section, values: &[Option<&str>]) -> Result<(), NvramErrorKind> {
        let keys = section.keys();
        let get = |i: usize| unescape(keys[i], values[i].unwrap_or(""));
        let non_empty = |i: usize| {
            let v = get(i)?;
            if v.is_empty() {
                return Err(NvramErrorKind::BadValue {
                    key: keys[i],
                    value: v,
                    expected: "a non-empty value",
                });
            }
            Ok(v)
        };
        let number = |i: usize| {
            let v = get(i)?;
            v.parse::<i64>().map_err(|_| NvramErrorKind::BadValue {
                key: keys[i],
                value: v,
                expected: "an integer",
            })
        };
        match section {
            Section::Args => {
                // Words are split on raw whitespace, then each is unescaped.
                let words = values[0]
                    .unwrap_or("")
                    .split(is_space)
                    .filter(|w| !w.is_empty());
                for word in words {
                    if self.nvram.args.len() >= RECORDS_LIMIT {
                        return Err(NvramErrorKind::TooManyArgs);
                    }
                    let arg = unescape("args", word)?;
                    self.nvram.args.push(arg);
                }
            }
            Section::Env => {
                let name = non_empty(0)?;
                let value = get(1)?;
                self.nvram.env.push(EnvVar { name, value });
            }
            Section::Fstab => {
                let channel = non_empty(0)?;
                let mountpoint = non_empty(1)?;
                let access = match get(2)?.as_str() {
                    "ro" => Access::ReadOnly,
                    "wo" => Access::WriteOnly,
                    other => {
                        return Err(NvramErrorKind::BadValue {
                            key: "access",
                            value: other.to_string(),
                            expected: "ro or wo",
                        })
                    }
                };
                let removable = match values[3] {
                    None => false,
                    Some(_) => match get(3)?.as_str() {
                        "yes" => true,
                        "no" => false,
                        other => {
                            return Err(NvramErrorKind::BadValue {
                                key: "removable",
                                value: other.to_string(),
                                expected: "yes or no",
                            })
                        }
                    },
                };
                let fsname = match values[4] {
                    None => FSNAME_TAR.to_string(),
                    Some(_) => non_empty(4)?,
                };
                self.nvram.fstab.push(FstabEntry {
                    channel,
                    mountpoint,
                    access,
                    removable,
                    fsname,
                });
            }
            Section::Mapping => {
                let channel = non_empty(0)?;
                let mode = match get(1)?.as_str() {
                    "char" => MappingMode::Char,
                    "pipe" => MappingMode::Pipe,
                    "file" => MappingMode::File,
                    other => {
                        return Err(NvramErrorKind::BadValue {
                            key: "mode",
                            value: other.to_string(),
                            expected: "char, pipe or file",
                        })
                    }
                };
                self.nvram.mapping.push(Mapping { channel, mode });
            }
            Section::Debug => self.nvram.debug_verbosity = Some(number(0)?),
            Section::Time => self.nvram.time = Some(number(0)?),
            Section::Precache => self.nvram.precache = Some(get(0)?),
        }
        Ok(())
    }
}

impl Nvram {
    /// Reads an NVRAM as ZRT did, skipping what ZRT skipped; returns what was
    /// understood and one diagnostic per skipped thing, in line order (a
    /// too-large file is reported first).
    pub fn parse_lenient(text: &[u8]) -> (Nvram, Vec<NvramError>) {
        let mut reader = Reader {
            nvram: Nvram::default(),
            diagnostics: Vec::new(),
            sections_seen: 0,
            current: None,
            records: [0; Section::ALL.len()],
        };
        let text = if text.len() > FILE_LIMIT {
            let cut = &text[..FILE_LIMIT];
            let line = cut.iter().filter(|&&b| b == b'\n').count() + 1;
            reader.note(line, NvramErrorKind::TooLarge);
            cut
        } else {
            text
        };
        for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            let Ok(raw) = std::str::from_utf8(raw) else {
                reader.note(line, NvramErrorKind::NotUtf8);
                continue;
            };
            let trimmed = strip(raw);
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if trimmed.starts_with('[') {
                reader.header(line, trimmed);
            } else {
                reader.record(line, trimmed);
            }
        }
        (reader.nvram, reader.diagnostics)
    }

    /// Reads an NVRAM strictly: the first thing ZRT would have skipped is an error.
    pub fn parse(text: &[u8]) -> Result<Nvram, NvramError> {
        let (nvram, diagnostics) = Nvram::parse_lenient(text);
        match diagnostics.into_iter().next() {
            Some(first) => Err(first),
            None => Ok(nvram),
        }
    }

    /// Writes the NVRAM as text that [`Nvram::parse`] reads back to an equal
    /// value. Sections in zvsh's order (`[args]`, `[env]`, `[fstab]`,
    /// `[mapping]`, `[debug]`), then `[time]`, `[precache]`; empty ones are left out.
    pub fn render(&self) -> Result<String, RenderError> {
        if let Some(i) = self.args.iter().position(String::is_empty) {
            return Err(RenderError::EmptyArgument(i));
        }
        let text = self.to_string();
        match Nvram::parse(text.as_bytes()) {
            Ok(back) if back == *self => Ok(text),
            Ok(_) => Err(RenderError::NotRepresentable),
            Err(e) => Err(RenderError::Unreadable(e)),
        }
    }
}

/// The text form, without the read-back check of [`Nvram::render`].
impl fmt::Display for Nvram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.args.is_empty() {
            let words: Vec<String> = self.args.iter().map(|a| escape(a)).collect();
            writeln!(f, "[args]\nargs = {}", words.join(" "))?;
        }
        if !self.env.is_empty() {
            writeln!(f, "[env]")?;
            for e in &self.env {
                writeln!(f, "name={}, value={}", escape(&e.name), escape(&e.value))?;
            }
        }
        if !self.fstab.is_empty() {
            writeln!(f, "[fstab]")?;
            for m in &self.fstab {
                write!(
                    f,
                    "channel={}, mountpoint={}, access={}, removable={}",
                    escape(&m.channel),
                    escape(&m.mountpoint),
                    m.access.as_str(),
                    if m.removable { "yes" } else { "no" }
                )?;
                if m.fsname != FSNAME_TAR {
                    write!(f, ", fsname={}", escape(&m.fsname))?;
                }
                writeln!(f)?;
            }
        }
        if !self.mapping.is_empty() {
            writeln!(f, "[mapping]")?;
            for m in &self.mapping {
                writeln!(
                    f,
                    "channel={}, mode={}",
                    escape(&m.channel),
                    m.mode.as_str()
                )?;
            }
        }
        if let Some(v) = self.debug_verbosity {
            writeln!(f, "[debug]\nverbosity={v}")?;
        }
        if let Some(t) = self.time {
            writeln!(f, "[time]\nseconds={t}")?;
        }
        if let Some(p) = &self.precache {
            writeln!(f, "[precache]\nprecache={}", escape(p))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Nvram, NvramError> {
        Nvram::parse(text.as_bytes())
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(n) => panic!("parsed: {n:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn zvsh_style_nvram() {
        let text = "[args]\n\
                    args = python -c print\\x28\\x22a\\x2cb\\x20c\\x22\\x29\n\
                    [env]\n\
                    name=HOME, value=/\n\
                    name=LIST, value=a\\x2cb\n\
                    name=EMPTY, value=\n\
                    [fstab]\n\
                    channel=/dev/1.python.tar, mountpoint=/, access=ro, removable=no\n\
                    channel=/dev/out.tar,mountpoint=/out,access=wo,removable=yes,fsname=TAR\n\
                    channel=/dev/2.img, mountpoint=/img, access=ro\n\
                    [mapping]\n\
                    channel=/dev/stdin, mode=char\n\
                    channel=/dev/stdout, mode=pipe\n\
                    channel=/dev/1.data, mode=file\n\
                    [debug]\n\
                    verbosity=4\n\
                    [time]\n\
                    seconds=1386003220\n";
        let n = parse(text).unwrap();
        assert_eq!(n.args, ["python", "-c", "print(\"a,b c\")"]);
        assert_eq!(
            n.env,
            [env("HOME", "/"), env("LIST", "a,b"), env("EMPTY", "")]
        );
        assert_eq!(
            n.fstab,
            [
                FstabEntry {
                    channel: "/dev/1.python.tar".into(),
                    mountpoint: "/".into(),
                    access: Access::ReadOnly,
                    removable: false,
                    fsname: "tar".into()
                },
                FstabEntry {
                    channel: "/dev/out.tar".into(),
                    mountpoint: "/out".into(),
                    access: Access::WriteOnly,
                    removable: true,
                    fsname: "TAR".into()
                },
                FstabEntry {
                    channel: "/dev/2.img".into(),
                    mountpoint: "/img".into(),
                    access: Access::ReadOnly,
                    removable: false,
                    fsname: "tar".into()
                },
            ]
        );
        assert!(n.fstab.iter().all(FstabEntry::is_tar));
        assert_eq!(
            n.mapping,
            [
                Mapping {
                    channel: "/dev/stdin".into(),
                    mode: MappingMode::Char
                },
                Mapping {
                    channel: "/dev/stdout".into(),
                    mode: MappingMode::Pipe
                },
                Mapping {
                    channel: "/dev/1.data".into(),
                    mode: MappingMode::File
                },
            ]
        );
        assert_eq!(n.debug_verbosity, Some(4));
        assert_eq!(n.time, Some(1386003220));
        assert_eq!(n.precache, None);
    }

    #[test]
    fn zerocloud_style_nvram() {
        // As sysmap renders it (spec/zerocloud.md §3.2).
        let text = "[fstab]\n\
                    channel=/dev/python, mountpoint=/, access=ro, removable=no\n\
                    channel=/dev/image, mountpoint=/, access=ro, removable=yes\n\
                    [args]\n\
                    args = hello a\\x20b\n\
                    [env]\n\
                    name=A, value=1\n\
                    name=K\\x2c1, value=me\\x2c myself\n\
                    [mapping]\n\
                    channel=/dev/stdout, mode=file\n";
        let n = parse(text).unwrap();
        assert_eq!(n.args, ["hello", "a b"]);
        assert_eq!(n.env, [env("A", "1"), env("K,1", "me, myself")]);
        assert_eq!(n.fstab.len(), 2);
        assert!(n.fstab[1].removable);
    }

    #[test]
    fn comments_blank_lines_crlf_and_repeated_sections() {
        let text = "# generated\r\n\
                    \r\n\
                    [args]\r\n\
                    args = a b\r\n\
                    args = c\r\n\
                    [ env ]\r\n\
                    \t# a comment\r\n\
                    name = X , value = 1 \r\n\
                    [args]\r\n\
                    args = d\r\n\
                    [env]\r\n\
                    name=Y,value=2\r\n\
                    [time]\r\n\
                    seconds=1\r\n\
                    seconds=-2\r\n";
        let n = parse(text).unwrap();
        assert_eq!(n.args, ["a", "b", "c", "d"]);
        assert_eq!(n.env, [env("X", "1"), env("Y", "2")]);
        assert_eq!(n.time, Some(-2));
    }

    #[test]
    fn escapes() {
        let table: &[(&str, &str)] = &[
            ("a\\x2cb", "a,b"),
            ("\\X2C\\x2C", ",,"),
            ("\\x5cx41", "\\x41"),
            ("c:\\dir", "c:\\dir"),
            ("\\x4", "\\x4"),
            ("\\xg1", "\\xg1"),
            ("\\", "\\"),
            ("\\xc3\\xa9t\\xc3\\xa9", "été"),
            ("été", "été"),
        ];
        for (raw, want) in table {
            assert_eq!(unescape("k", raw).as_deref(), Ok(*want), "{raw}");
        }
        assert_eq!(unescape("k", "\\xff"), Err(NvramErrorKind::BadEscape("k")));
        assert_eq!(
            escape("a,b c#\"\\\n\t\x7fé"),
            "a\\x2cb\\x20c\\x23\\x22\\x5c\\x0a\\x09\\x7fé"
        );
    }

    #[test]
    fn every_rule_names_its_line() {
        let table: &[(&str, &str)] = &[
            ("args = a\n", "NVRAM line 1: record outside of any section"),
            (
                "[args\nargs = a\n",
                "NVRAM line 1: malformed section header",
            ),
            (
                "[args] x\nargs = a\n",
                "NVRAM line 1: malformed section header",
            ),
            ("[arg]\nargs = a\n", "NVRAM line 1: unknown section [arg]"),
            ("[ARGS]\n", "NVRAM line 1: unknown section [ARGS]"),
            (
                "[env]\nname=A\n",
                "NVRAM line 2: [env] record without 'value'",
            ),
            (
                "[env]\nvalue=1\n",
                "NVRAM line 2: [env] record without 'name'",
            ),
            (
                "[env]\nname=A, value=1, junk\n",
                "NVRAM line 2: 'junk' is not key=value",
            ),
            (
                "[env]\nname=A, value=1, other=2\n",
                "NVRAM line 2: unknown key 'other' in [env]",
            ),
            (
                "[env]\nname=A, name=B, value=1\n",
                "NVRAM line 2: duplicate key 'name'",
            ),
            (
                "[env]\nname=, value=1\n",
                "NVRAM line 2: invalid name '' (expected a non-empty value)",
            ),
            (
                "[env]\nname=A, value=\\xfe\n",
                "NVRAM line 2: the value of 'value' is not UTF-8 once unescaped",
            ),
            (
                "[env]\nname=A, value=1, a=1, b=2, c=3, d=4\n",
                "NVRAM line 2: more than 5 keys in a record",
            ),
            (
                "[env]\nname=A, value=1, abcdefghijklmnopqrstu=1\n",
                "NVRAM line 2: key 'abcdefghijklmnopqrstu' is longer than 20 characters",
            ),
            (
                "[fstab]\nchannel=/dev/a, mountpoint=/, access=rw\n",
                "NVRAM line 2: invalid access 'rw' (expected ro or wo)",
            ),
            (
                "[fstab]\nchannel=/dev/a, mountpoint=/, access=ro, removable=maybe\n",
                "NVRAM line 2: invalid removable 'maybe' (expected yes or no)",
            ),
            (
                "[fstab]\nchannel=/dev/a, mountpoint=/, access=ro, removable=YES\n",
                "NVRAM line 2: invalid removable 'YES' (expected yes or no)",
            ),
            (
                "[fstab]\nchannel=/dev/a, access=ro\n",
                "NVRAM line 2: [fstab] record without 'mountpoint'",
            ),
            (
                "[fstab]\nchannel=, mountpoint=/, access=ro\n",
                "NVRAM line 2: invalid channel '' (expected a non-empty value)",
            ),
            (
                "[fstab]\nchannel=/dev/a, mountpoint=/, access=ro, fsname=\n",
                "NVRAM line 2: invalid fsname '' (expected a non-empty value)",
            ),
            (
                "[mapping]\nchannel=/dev/a, mode=socket\n",
                "NVRAM line 2: invalid mode 'socket' (expected char, pipe or file)",
            ),
            (
                "[mapping]\nmode=char\n",
                "NVRAM line 2: [mapping] record without 'channel'",
            ),
            (
                "[debug]\nverbosity=high\n",
                "NVRAM line 2: invalid verbosity 'high' (expected an integer)",
            ),
            (
                "[time]\nseconds=1.5\n",
                "NVRAM line 2: invalid seconds '1.5' (expected an integer)",
            ),
            (
                "[time]\nseconds=\n",
                "NVRAM line 2: invalid seconds '' (expected an integer)",
            ),
        ];
        for (text, want) in table {
            assert_eq!(err(text), *want, "{text}");
        }
    }

    #[test]
    fn non_utf8_line() {
        let e = Nvram::parse(b"[env]\nname=A, value=\xff\n").unwrap_err();
        assert_eq!(e.to_string(), "NVRAM line 2: the line is not UTF-8");
    }

    #[test]
    fn limits() {
        // Sections.
        let mut text = String::new();
        for _ in 0..SECTIONS_LIMIT {
            text.push_str("[env]\n");
        }
        assert!(parse(&text).is_ok());
        text.push_str("[time]\nseconds=1\n");
        assert_eq!(err(&text), "NVRAM line 8: more than 7 sections");
        let (n, diags) = Nvram::parse_lenient(text.as_bytes());
        assert_eq!((n.time, diags.len()), (None, 1));

        // Records per section.
        let mut text = "[mapping]\n".to_string();
        for i in 0..RECORDS_LIMIT {
            text.push_str(&format!("channel=/dev/{i},mode=file\n"));
        }
        assert_eq!(parse(&text).unwrap().mapping.len(), RECORDS_LIMIT);
        text.push_str("channel=/dev/x,mode=file\n");
        assert_eq!(
            err(&text),
            "NVRAM line 102: more than 100 records in [mapping]"
        );
        let (n, _) = Nvram::parse_lenient(text.as_bytes());
        assert_eq!(n.mapping.len(), RECORDS_LIMIT);

        // Arguments.
        let words: Vec<String> = (0..RECORDS_LIMIT).map(|i| i.to_string()).collect();
        let text = format!("[args]\nargs = {}\n", words.join(" "));
        assert_eq!(parse(&text).unwrap().args.len(), RECORDS_LIMIT);
        let text = format!("[args]\nargs = {} extra\n", words.join(" "));
        assert_eq!(err(&text), "NVRAM line 2: more than 100 arguments");
        assert_eq!(
            Nvram::parse_lenient(text.as_bytes()).0.args.len(),
            RECORDS_LIMIT
        );

        // File size: the cut line is reported and what is past it is ignored.
        let mut text = "[env]\n".to_string();
        while text.len() < FILE_LIMIT - 40 {
            text.push_str(&format!("name=A, value={}\n", "x".repeat(185)));
        }
        let fits = text.len();
        text.push_str("name=LAST, value=12345678901234567890\n[time]\nseconds=5\n");
        let line = text[..FILE_LIMIT].matches('\n').count() + 1;
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, line);
        assert_eq!(e.kind, NvramErrorKind::TooLarge);
        let (n, diags) = Nvram::parse_lenient(text.as_bytes());
        assert_eq!(n.time, None);
        assert_eq!(diags[0].kind, NvramErrorKind::TooLarge);
        // The cut record is read as far as it goes, as ZRT did.
        let last = n.env.last().unwrap();
        assert_eq!(last.name, "LAST");
        assert_eq!(
            last.value.len(),
            FILE_LIMIT - fits - "name=LAST, value=".len()
        );
    }

    #[test]
    fn lenient_skips_like_zrt_and_reports() {
        let text = "junk before sections\n\
                    [args]\n\
                    args = prog\n\
                    [unknown]\n\
                    whatever=1\n\
                    [fstab]\n\
                    channel=/dev/a, mountpoint=/, access=rw, removable=no\n\
                    channel=/dev/b, mountpoint=/, access=ro, removable=no, extra=1\n\
                    [env]\n\
                    name=A, name=B, value=1\n\
                    [mapping]\n\
                    channel=/dev/stdin, mode=tty\n\
                    channel=/dev/stdout, mode=char\n";
        let (n, diags) = Nvram::parse_lenient(text.as_bytes());
        assert_eq!(n.args, ["prog"]);
        assert_eq!(n.fstab.len(), 1);
        assert_eq!(n.fstab[0].channel, "/dev/b");
        assert_eq!(n.env, [env("A", "1")]);
        assert_eq!(n.mapping.len(), 1);
        let lines: Vec<usize> = diags.iter().map(|d| d.line).collect();
        assert_eq!(lines, [1, 4, 7, 8, 10, 12]);
    }

    #[test]
    fn render_golden_and_round_trip() {
        let n = Nvram {
            args: vec!["prog".into(), "a b".into(), "x,y".into()],
            env: vec![env("PATH", "/bin"), env("Q", " padded ")],
            fstab: vec![
                FstabEntry {
                    channel: "/dev/1.img.tar".into(),
                    mountpoint: "/".into(),
                    access: Access::ReadOnly,
                    removable: false,
                    fsname: "tar".into(),
                },
                FstabEntry {
                    channel: "/dev/out".into(),
                    mountpoint: "/out".into(),
                    access: Access::WriteOnly,
                    removable: true,
                    fsname: "fuse".into(),
                },
            ],
            mapping: vec![Mapping {
                channel: "/dev/stdin".into(),
                mode: MappingMode::Char,
            }],
            debug_verbosity: Some(3),
            time: Some(0),
            precache: Some("x".into()),
        };
        let text = n.render().unwrap();
        assert_eq!(
            text,
            "[args]\nargs = prog a\\x20b x\\x2cy\n\
             [env]\nname=PATH, value=/bin\nname=Q, value=\\x20padded\\x20\n\
             [fstab]\nchannel=/dev/1.img.tar, mountpoint=/, access=ro, removable=no\n\
             channel=/dev/out, mountpoint=/out, access=wo, removable=yes, fsname=fuse\n\
             [mapping]\nchannel=/dev/stdin, mode=char\n\
             [debug]\nverbosity=3\n[time]\nseconds=0\n[precache]\nprecache=x\n"
        );
        assert_eq!(parse(&text).unwrap(), n);
        assert_eq!(Nvram::default().render().unwrap(), "");
    }

    #[test]
    fn render_refuses_what_text_cannot_hold() {
        let n = Nvram {
            args: vec!["a".into(), String::new()],
            ..Nvram::default()
        };
        assert_eq!(n.render(), Err(RenderError::EmptyArgument(1)));
        let n = Nvram {
            env: vec![env("", "v")],
            ..Nvram::default()
        };
        assert!(matches!(n.render(), Err(RenderError::Unreadable(_))));
        let n = Nvram {
            args: (0..=RECORDS_LIMIT).map(|i| i.to_string()).collect(),
            ..Nvram::default()
        };
        assert!(matches!(n.render(), Err(RenderError::Unreadable(_))));
    }
}
