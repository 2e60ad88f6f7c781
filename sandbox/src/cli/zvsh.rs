//! `zvsh` (spec/zerovm.md §11): from a command line to the manifest, the NVRAM
//! and the files of a session — pure, so it is unit-tested here; the binary
//! (`bin/zvsh.rs`) probes the host, writes the files and runs the engine.
//!
//! `zvsh [--zvm-image PATH[,MOUNT[,ACCESS]]]… [--zvm-debug] [--zvm-verbosity N]
//! [--zvm-getrc] [--zvm-save-dir DIR] COMMAND [ARGS…]`
//!
//! As the original:
//! - Options come before `COMMAND`; everything after it is the program's.
//!   `--opt VALUE` and `--opt=VALUE` both work.
//! - The manifest (`manifest.<node>`): `Version`, `Timeout`, `Memory` (`,0`
//!   appended), `Node` from the config, `Program` = the absolute path of
//!   `COMMAND`, or `boot.<node>` when an image holds a member named exactly
//!   `COMMAND` (the last such image; the binary extracts it); channels `/dev/stdin`, `/dev/stdout`,
//!   `/dev/stderr` (type 0), `/dev/debug` (`--zvm-debug`: `./zvsh.log`), one
//!   per `@file` argument and per image (`/dev/<k>.<basename>`, k counting
//!   `@file`s first, then images, from 1; type 3; an image given twice is
//!   one channel), `/dev/self` (the program,
//!   type 3, read-only) and `/dev/nvram` (`nvram.<node>`, type 3). Limits from
//!   the config's `[limits]` (default 4294967296 each).
//! - `@path` becomes a channel (read-write if the user may write the file,
//!   else read-only) and the argument the
//!   program sees is the channel's alias, mapped `file`; `@NAME=value` with
//!   `NAME` in `[_A-Z0-9]+` sets an environment variable instead.
//! - The NVRAM (`nvram.<node>`): `[args]` (argv0 = basename of `COMMAND`),
//!   `[env]` (config `[env]`, then `@NAME=value`), `[fstab]` (images,
//!   `removable=no`), `[mapping]` (each standard stream `char` if zvsh's own
//!   is a tty, else `file`; the `@file` channels `file`), `[debug]`
//!   (`--zvm-verbosity`).
//! - Exit code: the program's code OR'ed with zerovm's status shifted left
//!   by 4 ([`crate::report::zvsh_exit_code`]); `--zvm-getrc`: the status alone.
//!
//! Differences (the engine runs in-process, no zerovm child):
//! - Standard streams: when zvsh's own stream is a character device or a
//!   pipe (stdin: also a regular file) the channel's source is the host's
//!   `/dev/stdin`/`/dev/stdout`/`/dev/stderr` itself and data flow as the
//!   program runs. Otherwise (a regular file — opening it write-only would
//!   truncate an `>>` append — or a socket, which channels refuse) the
//!   source is `stdin.<node>`/`stdout.<node>`/`stderr.<node>` in the session
//!   directory: zvsh fills the stdin file before the run and copies the
//!   output files to its own streams after it. A regular-file stdin is
//!   reopened, so it is read from its start whatever zvsh's offset was. A
//!   closed stdout pipe (`zvsh prog | head -1`) is a channel write failure
//!   (EIO), as a broken FIFO was for zerovm.
//! - The report is kept as `report.<node>` beside the manifest (the original
//!   printed it only on failure).
//! - Refused with a message: `gdb` as the command (there is no NaCl gdb),
//!   `--zvm-trace` (no ztrace), an image with `access=wo` (packing at exit is
//!   not done by the engine yet) or any access but `ro`/`wo` (`rw` was a
//!   silent no-op in ZRT).
//! - A bad command line prints the usage on stderr and exits 22 (EINVAL), as
//!   `zerovm` does.
//! - An `@file` that does not exist is refused by name ([`check_at_files`]);
//!   the original created it empty, so a typo ran the program on a new,
//!   empty file.
//! - `--help`/`-h` and `--version` (before the command) print the help or
//!   the version and exit 0; `--zvm-verbose` adds the manifest, NVRAM and
//!   report to a failure's message (the original always printed them).
//!   Without it a failure is one line, a timeout `timed out after N s`
//!   with the way to raise the limit.
//! - Paths that the manifest or NVRAM syntax cannot carry (a `,`, `;`, `=`,
//!   `:` or line break in a channel path, a `,`/`;`/`=` in an alias, an
//!   empty argument) are refused instead of producing a broken manifest.
//! - Config (`zvsh.cfg`, see [`Config::read`]): `[manifest]` keys other
//!   than `Version`, `Timeout`, `Memory`, `Node` are ignored (the original
//!   copied them verbatim); `[fstab]` and `[zvapp]` are ignored.

use std::fmt;

use crate::manifest::{self, ChannelSpec, Limits, Manifest, Memory, Source};
use crate::nvram::{Access, EnvVar, FstabEntry, Mapping, MappingMode, Nvram, FSNAME_TAR};

/// The usage text (printed with a bad command line).
pub const USAGE: &str = "usage: zvsh [--zvm-image PATH[,MOUNT[,ACCESS]]]... [--zvm-debug]
            [--zvm-verbosity N] [--zvm-getrc] [--zvm-save-dir DIR] [--zvm-verbose]
            COMMAND [ARGS...]
       zvsh --help | -h | --version

  COMMAND              a wasm program, the name of one inside an image, or
                       python3 (python, python2.7): the Python image
  @FILE                (in ARGS) an existing file, a channel /dev/<k>.<basename>
  @NAME=VALUE          (in ARGS) sets an environment variable
  --zvm-image PATH[,MOUNT[,ACCESS]]
                       mount the tar image at MOUNT (default /), ACCESS ro
  --zvm-debug          add a /dev/debug channel writing ./zvsh.log
  --zvm-verbosity N    NVRAM [debug] verbosity
  --zvm-getrc          exit with zerovm's status only
  --zvm-save-dir DIR   keep manifest, NVRAM and report in DIR
  --zvm-verbose        on a failure, also print the manifest, NVRAM and report
";

/// `zvsh --help`: the usage, an example, the Python image and the
/// defaults (from [`Config::default`], so the text cannot drift from them).
pub fn help() -> String {
    let d = Config::default();
    let gib = |bytes: u64| bytes as f64 / f64::from(1u32 << 30);
    format!(
        "zvsh: runs a WebAssembly program, or a Python script, like a local command,
in the sandbox (a manifest and NVRAM are made from the command line, then
run as `zerovm` runs them).

{USAGE}
Examples:
  zvsh python3 @hello.py world      # the script reads argv[1] = 'world'
  zvsh python3 -c 'print(6 * 7)'
  zvsh --zvm-image app.tar prog.wasm @input.txt

Python: `python3` runs the Python image that `zerocloud image install python`
installs, found in ${images_env} if set, else in {images_dir}
(relative to the current directory).

Defaults (change them in zvsh.cfg):
  Timeout  {timeout} s       wall clock; past it the run is stopped: timed out after {timeout} s
  Memory   {memory} GiB      the program's memory, and the files it writes in memory
  [limits] reads, rbytes, writes, wbytes: {limit} each, per channel
zvsh.cfg files are read in this order, a later one overriding an earlier one:
{files}. For example:
  [manifest]
  Timeout = 120
  Memory = 1073741824
  [env]
  GREETING = hello
  [limits]
  wbytes = 1048576

Exit code: the program's code, OR'ed with zerovm's status shifted left by 4
(64 after a timeout; --zvm-getrc: the status alone). 22: a bad command line.
",
        images_env = crate::image::IMAGES_ENV,
        images_dir = super::DEFAULT_IMAGES_DIR,
        timeout = d.timeout,
        memory = gib(u64::try_from(d.memory).unwrap_or(0)),
        limit = DEFAULT_LIMIT,
        files = CONFIG_FILES.join(", "),
    )
}

/// `zvsh --version`.
pub fn version() -> String {
    format!("zvsh (zerocloud sandbox) {}\n", env!("CARGO_PKG_VERSION"))
}

/// A command line zvsh will not run; `Display` is the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZvshError {
    /// Malformed: the usage follows the message.
    Usage(String),
    /// Well-formed but not supported, or not expressible in a manifest/NVRAM.
    Refused(String),
}

impl fmt::Display for ZvshError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZvshError::Usage(m) | ZvshError::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ZvshError {}

/// One `--zvm-image`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The tar file as given.
    pub path: String,
    /// Where the guest sees it.
    pub mount: String,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// `--zvm-image`, in order.
    pub images: Vec<Image>,
    /// `--zvm-debug`.
    pub debug: bool,
    /// `--zvm-verbosity`.
    pub verbosity: Option<i64>,
    /// `--zvm-getrc`.
    pub getrc: bool,
    /// `--zvm-save-dir`.
    pub save_dir: Option<String>,
    /// `--zvm-verbose`: a failure also shows the manifest, NVRAM and report.
    pub verbose: bool,
    /// `--help` or `-h` (before the command): print the help, run nothing.
    pub help: bool,
    /// `--version` (before the command): print the version, run nothing.
    pub version: bool,
    /// The program.
    pub command: String,
    /// Its arguments as given (`@…` not yet rewritten).
    pub args: Vec<String>,
}

/// Parses zvsh's arguments (without argv0).
pub fn parse_args(args: &[String]) -> Result<Invocation, ZvshError> {
    let mut inv = Invocation::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if !arg.starts_with("--zvm-") {
            match arg.as_str() {
                "--help" | "-h" => {
                    inv.help = true;
                    return Ok(inv);
                }
                "--version" => {
                    inv.version = true;
                    return Ok(inv);
                }
                _ => {}
            }
            if arg.starts_with('-') && arg != "-" {
                return Err(ZvshError::Usage(format!("unknown option {arg}")));
            }
            if arg == "gdb" {
                return Err(ZvshError::Refused(
                    "gdb mode is not supported: there is no NaCl debugger for wasm programs".into(),
                ));
            }
            inv.command = arg.clone();
            inv.args = args[i..].to_vec();
            return Ok(inv);
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        let takes_value = matches!(name, "--zvm-image" | "--zvm-verbosity" | "--zvm-save-dir");
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => return Err(ZvshError::Usage(format!("option {name} needs a value"))),
                },
            }
        } else {
            if inline.is_some() && matches!(name, "--zvm-debug" | "--zvm-getrc" | "--zvm-verbose") {
                return Err(ZvshError::Usage(format!("option {name} takes no value")));
            }
            String::new()
        };
        match name {
            "--zvm-image" => inv.images.push(parse_image(&value)?),
            "--zvm-verbosity" => match value.trim().parse::<i64>() {
                Ok(n) if n >= 0 => inv.verbosity = Some(n),
                _ => {
                    return Err(ZvshError::Usage(format!(
                        "--zvm-verbosity needs a non-negative number, not '{value}'"
                    )))
                }
            },
            "--zvm-save-dir" if value.is_empty() => {
                return Err(ZvshError::Usage("--zvm-save-dir needs a directory".into()))
            }
            "--zvm-save-dir" => inv.save_dir = Some(value),
            "--zvm-debug" => inv.debug = true,
            "--zvm-getrc" => inv.getrc = true,
            "--zvm-verbose" => inv.verbose = true,
            "--zvm-trace" => {
                return Err(ZvshError::Refused(
                    "--zvm-trace is not supported: there is no ztrace in the wasm engine".into(),
                ))
            }
            other => return Err(ZvshError::Usage(format!("unknown option {other}"))),
        }
    }
    Err(ZvshError::Usage("no command given".into()))
}

fn parse_image(value: &str) -> Result<Image, ZvshError> {
    let mut parts = value.split(',');
    let path = parts.next().unwrap_or_default().to_string();
    let mount = parts.next().filter(|m| !m.is_empty()).unwrap_or("/");
    let access = parts.next().unwrap_or("ro");
    if parts.next().is_some() {
        return Err(ZvshError::Usage(format!(
            "--zvm-image takes PATH[,MOUNT[,ACCESS]], not '{value}'"
        )));
    }
    if path.is_empty() {
        return Err(ZvshError::Usage("--zvm-image needs a path".into()));
    }
    if !mount.starts_with('/') {
        return Err(ZvshError::Usage(format!(
            "--zvm-image mount point '{mount}' must be absolute"
        )));
    }
    match access {
        "ro" => {}
        "wo" => {
            return Err(ZvshError::Refused(format!(
                "--zvm-image {value}: access 'wo' (pack the files into the tar at exit) is not supported yet"
            )))
        }
        other => {
            return Err(ZvshError::Refused(format!(
                "--zvm-image {value}: access must be 'ro' (or 'wo'), not '{other}'"
            )))
        }
    }
    Ok(Image {
        path,
        mount: mount.to_string(),
    })
}

/// The `[limits]` of the config: the four channel limits zvsh writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigLimits {
    /// `reads` (gets).
    pub reads: u64,
    /// `rbytes` (get_size).
    pub rbytes: u64,
    /// `writes` (puts).
    pub writes: u64,
    /// `wbytes` (put_size).
    pub wbytes: u64,
}

/// zvsh's configuration (`zvsh.cfg`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[manifest] Version`.
    pub version: String,
    /// `[manifest] Timeout` (seconds).
    pub timeout: i64,
    /// `[manifest] Memory` (bytes; `,0` is appended in the manifest).
    pub memory: i64,
    /// `[manifest] Node`: also the suffix of the generated files.
    pub node: i64,
    /// `[env]`, in order.
    pub env: Vec<(String, String)>,
    /// `[limits]`.
    pub limits: ConfigLimits,
}

/// The default of every `[limits]` value.
pub const DEFAULT_LIMIT: u64 = 4_294_967_296;

impl Default for Config {
    fn default() -> Self {
        Config {
            version: manifest::VERSION.to_string(),
            timeout: 50,
            memory: 4_294_967_296,
            node: 1,
            env: Vec::new(),
            limits: ConfigLimits {
                reads: DEFAULT_LIMIT,
                rbytes: DEFAULT_LIMIT,
                writes: DEFAULT_LIMIT,
                wbytes: DEFAULT_LIMIT,
            },
        }
    }
}

/// Where zvsh looks for its config, in reading order (later files override
/// earlier ones, as the original's `ConfigParser.read` did); `~` is `$HOME`.
pub const CONFIG_FILES: [&str; 3] = ["zvsh.cfg", "~/.zvsh.cfg", "/etc/zvsh.cfg"];

impl Config {
    /// Applies one config file's text: INI sections, `key = value` (or
    /// `key: value`) lines, `#`/`;` comments. Numbers as in the manifest
    /// (decimal, `0x`, leading-`0` octal). `name` prefixes error messages.
    pub fn read(&mut self, name: &str, text: &str) -> Result<(), ZvshError> {
        let mut section = String::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let bad = |what: String| ZvshError::Refused(format!("{name}:{}: {what}", n + 1));
            if let Some(s) = line.strip_prefix('[') {
                section = s
                    .strip_suffix(']')
                    .ok_or_else(|| bad(format!("bad section header '{line}'")))?
                    .trim()
                    .to_string();
                continue;
            }
            let at = line
                .find(['=', ':'])
                .ok_or_else(|| bad(format!("'{line}' is not 'key = value'")))?;
            let (key, value) = (line[..at].trim(), line[at + 1..].trim());
            let number = || {
                manifest::parse_int(value)
                    .map_err(|_| bad(format!("{key}: '{value}' is not a number")))
            };
            let limit = || {
                number().and_then(|v| {
                    u64::try_from(v).map_err(|_| bad(format!("{key} must not be negative")))
                })
            };
            match (section.as_str(), key) {
                ("manifest", "Version") => self.version = value.to_string(),
                ("manifest", "Timeout") => self.timeout = number()?,
                ("manifest", "Memory") => {
                    // Accept `bytes` or the manifest's own `bytes,etag`.
                    let bytes = value.split(',').next().unwrap_or_default().trim();
                    self.memory = manifest::parse_int(bytes)
                        .map_err(|_| bad(format!("Memory: '{value}' is not a number")))?;
                }
                ("manifest", "Node") => self.node = number()?,
                ("env", _) => {
                    self.env.retain(|(k, _)| k != key);
                    self.env.push((key.to_string(), value.to_string()));
                }
                ("limits", "reads") => self.limits.reads = limit()?,
                ("limits", "rbytes") => self.limits.rbytes = limit()?,
                ("limits", "writes") => self.limits.writes = limit()?,
                ("limits", "wbytes") => self.limits.wbytes = limit()?,
                _ => {}
            }
        }
        if self.node < 1 {
            return Err(ZvshError::Refused(format!(
                "{name}: Node must be at least 1, not {}",
                self.node
            )));
        }
        Ok(())
    }
}

/// What one of zvsh's own standard streams is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stream {
    /// The host's `/dev/std…` can be the channel source directly.
    pub direct: bool,
    /// A terminal (NVRAM mapping `char`, else `file`).
    pub tty: bool,
}

/// Host facts the plan depends on; the binary asks the real system.
pub trait Host {
    /// The current directory (absolute), for relative paths.
    fn cwd(&self) -> String;
    /// Whether the user may write this (existing) file.
    fn writable(&self, path: &str) -> bool;
    /// Whether the tar at `image` has a regular-file member named `member`.
    fn image_has(&self, image: &str, member: &str) -> bool;
    /// zvsh's own stdin, stdout, stderr.
    fn streams(&self) -> [Stream; 3];
}

/// A program extracted from an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// The image (absolute path).
    pub image: String,
    /// The member.
    pub member: String,
    /// Where it goes (`<dir>/boot.<node>`).
    pub path: String,
}

/// Everything a session needs: texts to write and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The manifest.
    pub manifest: Manifest,
    /// Its text.
    pub manifest_text: String,
    /// Where it is written.
    pub manifest_path: String,
    /// The NVRAM.
    pub nvram: Nvram,
    /// Its text.
    pub nvram_text: String,
    /// Where it is written.
    pub nvram_path: String,
    /// Where the report is written.
    pub report_path: String,
    /// The program to extract from an image first, if any.
    pub boot: Option<Boot>,
    /// File standing in for stdin (zvsh copies its stdin there first).
    pub stdin_file: Option<String>,
    /// Files standing in for stdout and stderr (copied out after the run).
    pub stdout_file: Option<String>,
    /// See `stdout_file`.
    pub stderr_file: Option<String>,
}

/// `path` made absolute against `cwd`, lexically (`.` and empty parts dropped).
pub fn absolute(cwd: &str, path: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let parts: Vec<&str> = joined
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn basename(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or(path)
}

/// `@NAME=value` with `NAME` in `[_A-Z0-9]+`.
fn env_assignment(rest: &str) -> Option<(&str, &str)> {
    let (name, value) = rest.split_once('=')?;
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b == b'_' || b.is_ascii_uppercase() || b.is_ascii_digit());
    ok.then_some((name, value))
}

/// The `@file` arguments, without their `@`.
fn at_file_args(inv: &Invocation) -> impl Iterator<Item = &str> {
    inv.args
        .iter()
        .filter_map(|a| a.strip_prefix('@'))
        .filter(|rest| !rest.is_empty() && env_assignment(rest).is_none())
}

/// Refuses an `@file` argument naming no existing file (`exists` asks the
/// host), by the name given: the original created it empty, so a typo
/// (`@scirpt.py`) ran the program on a new empty file and left it behind.
/// A file the program is to write must be created first.
pub fn check_at_files(
    inv: &Invocation,
    cwd: &str,
    exists: impl Fn(&str) -> bool,
) -> Result<(), ZvshError> {
    for rest in at_file_args(inv) {
        let path = absolute(cwd, rest);
        if !exists(&path) {
            return Err(ZvshError::Refused(format!(
                "@{rest}: no such file ({path}); an @file must exist: for a file the program \
                 writes, create it first (touch {rest})"
            )));
        }
    }
    Ok(())
}

fn check_source(path: &str) -> Result<(), ZvshError> {
    if path.contains([',', ';', '=', ':', '\n', '\r', '\0']) {
        return Err(ZvshError::Refused(format!(
            "'{path}' cannot be a channel: a manifest cannot hold ',', ';', '=', ':' or a line break in a path"
        )));
    }
    Ok(())
}

fn check_alias(alias: &str) -> Result<(), ZvshError> {
    if alias.contains([',', ';', '=', '\n', '\r', '\0']) {
        return Err(ZvshError::Refused(format!(
            "'{alias}' cannot be a channel name: a manifest cannot hold ',', ';', '=' or a line break in it"
        )));
    }
    Ok(())
}

fn channel(source: &str, alias: &str, type_number: i64, limits: Limits) -> ChannelSpec {
    ChannelSpec {
        line: 0,
        sources: vec![Source::Local(source.to_string())],
        alias: alias.to_string(),
        type_number,
        etag: false,
        limits,
    }
}

/// Builds the session of `inv` in directory `dir` (absolute).
pub fn plan(
    inv: &Invocation,
    config: &Config,
    dir: &str,
    host: &impl Host,
) -> Result<Plan, ZvshError> {
    let cwd = host.cwd();
    let node = config.node;
    let l = config.limits;
    let ro = Limits {
        gets: l.reads,
        get_size: l.rbytes,
        puts: 0,
        put_size: 0,
    };
    let wo = Limits {
        gets: 0,
        get_size: 0,
        puts: l.writes,
        put_size: l.wbytes,
    };
    let rw = Limits {
        gets: l.reads,
        get_size: l.rbytes,
        puts: l.writes,
        put_size: l.wbytes,
    };
    let in_dir = |name: &str| format!("{dir}/{name}.{node}");
    check_source(dir)?;

    let [stdin, stdout, stderr] = host.streams();
    let pick = |s: Stream, host_path: &str, name: &str| {
        if s.direct {
            (host_path.to_string(), None)
        } else {
            let f = in_dir(name);
            (f.clone(), Some(f))
        }
    };
    let (stdin_src, stdin_file) = pick(stdin, "/dev/stdin", "stdin");
    let (stdout_src, stdout_file) = pick(stdout, "/dev/stdout", "stdout");
    let (stderr_src, stderr_file) = pick(stderr, "/dev/stderr", "stderr");
    let mut channels = vec![
        channel(&stdin_src, manifest::STDIN, 0, ro),
        channel(&stdout_src, manifest::STDOUT, 0, wo),
        channel(&stderr_src, manifest::STDERR, 0, wo),
    ];
    let mode = |s: Stream| {
        if s.tty {
            MappingMode::Char
        } else {
            MappingMode::File
        }
    };
    let mut nvram = Nvram {
        mapping: vec![
            Mapping {
                channel: manifest::STDIN.into(),
                mode: mode(stdin),
            },
            Mapping {
                channel: manifest::STDOUT.into(),
                mode: mode(stdout),
            },
            Mapping {
                channel: manifest::STDERR.into(),
                mode: mode(stderr),
            },
        ],
        debug_verbosity: inv.verbosity,
        ..Nvram::default()
    };
    if inv.debug {
        let log = absolute(&cwd, "zvsh.log");
        check_source(&log)?;
        channels.push(channel(&log, "/dev/debug", 0, wo));
    }

    let mut k = 0;
    nvram.env = config
        .env
        .iter()
        .map(|(name, value)| EnvVar {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    let mut argv = vec![basename(&inv.command).to_string()];
    for (i, arg) in inv.args.iter().enumerate() {
        let Some(rest) = arg.strip_prefix('@').filter(|r| !r.is_empty()) else {
            if arg.is_empty() {
                return Err(ZvshError::Refused(format!(
                    "argument {} is empty; the NVRAM cannot pass an empty argument",
                    i + 1
                )));
            }
            argv.push(arg.clone());
            continue;
        };
        if let Some((name, value)) = env_assignment(rest) {
            nvram.env.retain(|v| v.name != name);
            nvram.env.push(EnvVar {
                name: name.into(),
                value: value.into(),
            });
            continue;
        }
        k += 1;
        let path = absolute(&cwd, rest);
        check_source(&path)?;
        let alias = format!("/dev/{k}.{}", basename(rest));
        check_alias(&alias)?;
        let limits = if host.writable(&path) { rw } else { ro };
        channels.push(channel(&path, &alias, 3, limits));
        nvram.mapping.push(Mapping {
            channel: alias.clone(),
            mode: MappingMode::File,
        });
        argv.push(alias);
    }
    nvram.args = argv;

    let mut boot = None;
    // The same image twice is one channel mounted twice.
    let mut image_aliases: Vec<(String, String)> = Vec::new();
    for image in &inv.images {
        let path = absolute(&cwd, &image.path);
        let alias = match image_aliases.iter().find(|(p, _)| *p == path) {
            Some((_, alias)) => alias.clone(),
            None => {
                k += 1;
                check_source(&path)?;
                let alias = format!("/dev/{k}.{}", basename(&image.path));
                check_alias(&alias)?;
                channels.push(channel(&path, &alias, 3, ro));
                image_aliases.push((path.clone(), alias.clone()));
                alias
            }
        };
        nvram.fstab.push(FstabEntry {
            channel: alias,
            mountpoint: image.mount.clone(),
            access: Access::ReadOnly,
            removable: false,
            fsname: FSNAME_TAR.into(),
        });
        // As the original: the last image holding the command wins.
        if host.image_has(&path, &inv.command) {
            boot = Some(Boot {
                image: path,
                member: inv.command.clone(),
                path: in_dir("boot"),
            });
        }
    }
    let program = match &boot {
        Some(b) => b.path.clone(),
        None => absolute(&cwd, &inv.command),
    };
    check_source(&program)?;

    let nvram_path = in_dir("nvram");
    channels.push(channel(&program, "/dev/self", 3, ro));
    channels.push(channel(&nvram_path, crate::engine::NVRAM_ALIAS, 3, rw));
    let manifest = Manifest {
        version: config.version.clone(),
        program,
        timeout: config.timeout,
        memory: Memory {
            size: config.memory,
            etag: false,
        },
        channels,
        name_server: None,
        node: Some(node),
        job: None,
        etag: None,
    };
    let manifest_text = manifest.render();
    let nvram_text = nvram
        .render()
        .map_err(|e| ZvshError::Refused(format!("cannot write the NVRAM: {e}")))?;
    Ok(Plan {
        manifest,
        manifest_text,
        manifest_path: in_dir("manifest"),
        nvram,
        nvram_text,
        nvram_path,
        report_path: in_dir("report"),
        boot,
        stdin_file,
        stdout_file,
        stderr_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FakeHost {
        writable: bool,
        image_member: Option<&'static str>,
        streams: [Stream; 3],
    }

    impl Host for FakeHost {
        fn cwd(&self) -> String {
            "/home/me".into()
        }
        fn writable(&self, _path: &str) -> bool {
            self.writable
        }
        fn image_has(&self, _image: &str, member: &str) -> bool {
            self.image_member == Some(member)
        }
        fn streams(&self) -> [Stream; 3] {
            self.streams
        }
    }

    const PIPES: [Stream; 3] = [Stream {
        direct: true,
        tty: false,
    }; 3];

    fn host() -> FakeHost {
        FakeHost {
            writable: true,
            image_member: None,
            streams: PIPES,
        }
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn plan_of(a: &[&str], host: &FakeHost) -> Result<Plan, ZvshError> {
        let inv = parse_args(&args(a))?;
        plan(&inv, &Config::default(), "/tmp/s", host)
    }

    #[test]
    fn help_and_version_before_the_command_only() {
        for flag in ["--help", "-h"] {
            let inv = parse_args(&args(&["--zvm-verbose", flag, "junk"])).unwrap();
            assert!(inv.help && inv.verbose && inv.command.is_empty(), "{flag}");
        }
        assert!(parse_args(&args(&["--version"])).unwrap().version);
        // After the command they are the program's.
        let inv = parse_args(&args(&["prog.wasm", "-h", "--version"])).unwrap();
        assert!(!inv.help && !inv.version);
        assert_eq!(inv.args, ["-h", "--version"]);
        assert!(matches!(
            parse_args(&args(&["--zvm-verbose=1", "p"])),
            Err(ZvshError::Usage(_))
        ));
        let help = help();
        for says in [
            "zvsh python3 @hello.py",
            "$ZEROCLOUD_IMAGES",
            "./zerocloud-data/images",
            "Timeout  50 s",
            "Memory   4 GiB",
            "4294967296 each",
            "zvsh.cfg, ~/.zvsh.cfg, /etc/zvsh.cfg",
            "--zvm-verbose",
        ] {
            assert!(help.contains(says), "{says:?} not in:\n{help}");
        }
    }

    #[test]
    fn options_then_command_then_program_args() {
        let inv = parse_args(&args(&[
            "--zvm-image",
            "py.tar",
            "--zvm-image=data.tar,/data",
            "--zvm-getrc",
            "--zvm-verbosity=3",
            "--zvm-save-dir",
            "out",
            "prog.wasm",
            "--zvm-debug",
            "-x",
        ]))
        .unwrap();
        assert_eq!(
            inv.images,
            [
                Image {
                    path: "py.tar".into(),
                    mount: "/".into()
                },
                Image {
                    path: "data.tar".into(),
                    mount: "/data".into()
                }
            ]
        );
        assert!(inv.getrc && !inv.debug);
        assert_eq!(inv.verbosity, Some(3));
        assert_eq!(inv.save_dir.as_deref(), Some("out"));
        assert_eq!(inv.command, "prog.wasm");
        assert_eq!(inv.args, ["--zvm-debug", "-x"]);
    }

    #[test]
    fn bad_and_refused_options() {
        let e = |a: &[&str]| parse_args(&args(a)).unwrap_err();
        assert!(matches!(e(&[]), ZvshError::Usage(_)));
        assert!(matches!(e(&["--zvm-image"]), ZvshError::Usage(_)));
        assert!(matches!(e(&["--zvm-bogus", "p"]), ZvshError::Usage(_)));
        assert!(matches!(e(&["-v", "p"]), ZvshError::Usage(_)));
        assert!(matches!(
            e(&["--zvm-verbosity", "x", "p"]),
            ZvshError::Usage(_)
        ));
        for refused in [
            &["--zvm-trace", "p"][..],
            &["gdb", "--args", "p"],
            &["--zvm-image", "a.tar,/,rw", "p"],
            &["--zvm-image", "a.tar,/,wo", "p"],
        ] {
            assert!(matches!(e(refused), ZvshError::Refused(_)), "{refused:?}");
        }
        assert!(e(&["--zvm-trace", "p"]).to_string().contains("ztrace"));
    }

    #[test]
    fn hello_manifest_and_nvram() {
        let p = plan_of(&["prog.wasm", "a", "b c"], &host()).unwrap();
        assert_eq!(
            p.manifest_text,
            "Version = 20130611\n\
             Program = /home/me/prog.wasm\n\
             Timeout = 50\n\
             Memory = 4294967296,0\n\
             Channel = /dev/stdin,/dev/stdin,0,0,4294967296,4294967296,0,0\n\
             Channel = /dev/stdout,/dev/stdout,0,0,0,0,4294967296,4294967296\n\
             Channel = /dev/stderr,/dev/stderr,0,0,0,0,4294967296,4294967296\n\
             Channel = /home/me/prog.wasm,/dev/self,3,0,4294967296,4294967296,0,0\n\
             Channel = /tmp/s/nvram.1,/dev/nvram,3,0,4294967296,4294967296,4294967296,4294967296\n\
             Node = 1\n"
        );
        assert_eq!(
            p.nvram_text,
            "[args]\nargs = prog.wasm a b\\x20c\n\
             [mapping]\n\
             channel=/dev/stdin, mode=file\n\
             channel=/dev/stdout, mode=file\n\
             channel=/dev/stderr, mode=file\n"
        );
        assert_eq!(p.manifest_path, "/tmp/s/manifest.1");
        assert_eq!(p.nvram_path, "/tmp/s/nvram.1");
        assert_eq!(p.report_path, "/tmp/s/report.1");
        assert_eq!((p.boot, p.stdin_file, p.stdout_file), (None, None, None));
        // The text reads back as the manifest it came from.
        let back = Manifest::parse(p.manifest_text.as_bytes()).unwrap();
        assert_eq!(back.channels.len(), 5);
        assert_eq!(Nvram::parse(p.nvram_text.as_bytes()).unwrap(), p.nvram);
    }

    #[test]
    fn a_missing_at_file_is_refused_by_name() {
        let inv = parse_args(&args(&["python3", "@here.py", "@NAME=v", "@nope.py"])).unwrap();
        let exists = |p: &str| p == "/home/me/here.py";
        let e = check_at_files(&inv, "/home/me", exists).unwrap_err();
        let ZvshError::Refused(m) = e else {
            panic!("{e:?}")
        };
        assert!(
            m.starts_with("@nope.py: no such file (/home/me/nope.py)"),
            "{m}"
        );
        assert!(check_at_files(&inv, "/home/me", |_| true).is_ok());
    }

    #[test]
    fn at_files_become_channels_and_env() {
        let mut h = host();
        let inv = parse_args(&args(&[
            "--zvm-image",
            "/img/py.tar,/usr",
            "../bin/cat.wasm",
            "@input.txt",
            "-n",
            "@FOO_1=x,y",
            "@dir/out.log",
            "@lower=case",
        ]))
        .unwrap();
        // The host files the binary checks exist.
        let asked = std::cell::RefCell::new(Vec::new());
        check_at_files(&inv, "/home/me", |p| {
            asked.borrow_mut().push(p.to_string());
            true
        })
        .unwrap();
        assert_eq!(
            asked.into_inner(),
            [
                "/home/me/input.txt",
                "/home/me/dir/out.log",
                "/home/me/lower=case"
            ]
        );
        h.writable = false;
        let config = Config {
            env: vec![("FOO_1".into(), "old".into()), ("HOME".into(), "/".into())],
            ..Config::default()
        };
        let err = plan(&inv, &config, "/tmp/s", &h).unwrap_err();
        assert!(err.to_string().contains("lower=case"), "{err}");
        let inv = Invocation {
            args: inv.args[..4].to_vec(),
            ..inv
        };
        let p = plan(&inv, &config, "/tmp/s", &h).unwrap();
        assert_eq!(p.manifest.program, "/home/me/../bin/cat.wasm");
        assert_eq!(
            p.nvram.args,
            ["cat.wasm", "/dev/1.input.txt", "-n", "/dev/2.out.log"]
        );
        assert_eq!(
            p.nvram.env,
            [
                EnvVar {
                    name: "HOME".into(),
                    value: "/".into()
                },
                EnvVar {
                    name: "FOO_1".into(),
                    value: "x,y".into()
                }
            ]
        );
        let lines: Vec<&str> = p.manifest_text.lines().collect();
        assert!(
            lines.contains(&"Channel = /img/py.tar,/dev/3.py.tar,3,0,4294967296,4294967296,0,0")
        );
        assert!(lines.contains(
            &"Channel = /home/me/input.txt,/dev/1.input.txt,3,0,4294967296,4294967296,0,0"
        ));
        assert!(p.nvram_text.contains(
            "[fstab]\nchannel=/dev/3.py.tar, mountpoint=/usr, access=ro, removable=no\n"
        ));
        assert!(p
            .nvram_text
            .contains("channel=/dev/1.input.txt, mode=file\nchannel=/dev/2.out.log, mode=file\n"));
        // Writable files get read-write limits.
        h.writable = true;
        let p = plan(&inv, &config, "/tmp/s", &h).unwrap();
        assert!(p.manifest_text.contains(
            "Channel = /home/me/input.txt,/dev/1.input.txt,3,0,4294967296,4294967296,4294967296,4294967296\n"
        ));
    }

    #[test]
    fn program_inside_an_image_is_booted() {
        let mut h = host();
        h.image_member = Some("python");
        let p = plan_of(&["--zvm-image", "py.tar", "python", "-c", "1"], &h).unwrap();
        assert_eq!(
            p.boot,
            Some(Boot {
                image: "/home/me/py.tar".into(),
                member: "python".into(),
                path: "/tmp/s/boot.1".into()
            })
        );
        assert_eq!(p.manifest.program, "/tmp/s/boot.1");
        assert_eq!(p.nvram.args, ["python", "-c", "1"]);
    }

    #[test]
    fn an_image_given_twice_is_one_channel() {
        let p = plan_of(
            &[
                "--zvm-image",
                "a.tar,/x",
                "--zvm-image",
                "./a.tar,/y",
                "p.wasm",
                "@f",
            ],
            &host(),
        )
        .unwrap();
        assert_eq!(p.manifest.channels.len(), 7);
        assert!(p.nvram_text.contains(
            "[fstab]\nchannel=/dev/2.a.tar, mountpoint=/x, access=ro, removable=no\n\
             channel=/dev/2.a.tar, mountpoint=/y, access=ro, removable=no\n"
        ));
    }

    #[test]
    fn streams_that_are_files_or_ttys() {
        let mut h = host();
        h.streams = [
            Stream {
                direct: true,
                tty: true,
            },
            Stream {
                direct: false,
                tty: false,
            },
            Stream {
                direct: true,
                tty: true,
            },
        ];
        let p = plan_of(&["p.wasm"], &h).unwrap();
        assert_eq!(p.stdout_file.as_deref(), Some("/tmp/s/stdout.1"));
        assert_eq!((p.stdin_file, p.stderr_file), (None, None));
        assert!(p
            .manifest_text
            .contains("Channel = /tmp/s/stdout.1,/dev/stdout,0,0,0,0,"));
        assert!(p.nvram_text.contains(
            "channel=/dev/stdin, mode=char\nchannel=/dev/stdout, mode=file\nchannel=/dev/stderr, mode=char\n"
        ));
    }

    #[test]
    fn debug_verbosity_and_config() {
        let mut config = Config::default();
        config
            .read(
                "zvsh.cfg",
                "# comment\n[manifest]\nTimeout = 5\nMemory = 0x4000000\nNode = 7\nExtra = 1\n\
                 [env]\nHOME = /\n[limits]\nreads = 10\nwbytes: 100\n[fstab]\n/a.tar = / ro\n",
            )
            .unwrap();
        assert_eq!(
            (config.timeout, config.memory, config.node),
            (5, 1 << 26, 7)
        );
        assert_eq!(config.env, [("HOME".to_string(), "/".to_string())]);
        assert_eq!(config.limits.reads, 10);
        assert_eq!(config.limits.wbytes, 100);
        let inv = parse_args(&args(&["--zvm-debug", "--zvm-verbosity", "2", "p.wasm"])).unwrap();
        let p = plan(&inv, &config, "/tmp/s", &host()).unwrap();
        assert!(p
            .manifest_text
            .contains("Timeout = 5\nMemory = 67108864,0\n"));
        assert!(p
            .manifest_text
            .contains("Channel = /home/me/zvsh.log,/dev/debug,0,0,0,0,4294967296,100\n"));
        assert!(p.manifest_text.ends_with("Node = 7\n"));
        assert_eq!(p.nvram_path, "/tmp/s/nvram.7");
        assert!(p.nvram_text.contains("[env]\nname=HOME, value=/\n"));
        assert!(p.nvram_text.ends_with("[debug]\nverbosity=2\n"));
        for bad in [
            "[manifest]\nTimeout = x\n",
            "[limits]\nreads = -1\n",
            "junk\n",
        ] {
            assert!(Config::default().read("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unrepresentable_paths_and_arguments_are_refused() {
        for a in [
            &["p.wasm", ""][..],
            &["p.wasm", "@a,b"],
            &["p:x.wasm"],
            &["p.wasm", "@a;b"],
        ] {
            assert!(
                matches!(plan_of(a, &host()), Err(ZvshError::Refused(_))),
                "{a:?}"
            );
        }
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("/h", "./a//b/"), "/h/a/b");
        assert_eq!(absolute("/h", "/x/./y"), "/x/y");
        assert_eq!(absolute("/", "a"), "/a");
    }
}
