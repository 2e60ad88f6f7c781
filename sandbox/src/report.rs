//! ZeroVM's end-of-session report (spec/zerovm.md §7.1), its accounting line (§8)
//! and the exit-code rules of zerovm (§7.2, §13) and zvsh (§11), rendered byte-exact.
//!
//! The engine fills a [`Report`] and prints [`Report::render`] on stdout
//! (`-t0`), [`Report::render_syslog`] (`-t1`) or, for daemon sessions,
//! [`Report::render_socket`] on the Job connection. How the session ended is
//! an [`Ending`], which gives both the exit-state line and zerovm's exit code.

use std::fmt;
use std::time::Duration;

use crate::errno;
use crate::manifest::ManifestError;

/// Exit state of a session whose failure left no message.
pub const UNKNOWN_STATE: &str = "unknown error, see syslog";
/// Exit state of a session that ended well.
pub const OK_STATE: &str = "ok";
/// Exit state of a session stopped by its `Timeout`.
pub const TIMEOUT_STATE: &str = "session timeout";
/// Exit state of a program that failed validation (compilation).
pub const VALIDATION_FAILED_STATE: &str = "validation failed";
/// The etag line when no channel or memory etag is enabled: ZeroVM appended
/// "disabled" and chopped the last character, so this is the literal text.
pub const ETAG_DISABLED: &str = "disable";

/// Report line 1: what became of validation (here: wasm module compilation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Validation {
    /// `0`: the module validated and compiled.
    Validated = 0,
    /// `1`: the module is invalid (exit ENOEXEC, state `validation failed`).
    Failed = 1,
    /// `2`: skipped (`-s`, a trusted cached artifact) or never reached.
    NotValidated = 2,
}

/// Host-side I/O counts of one kind of source (§8): operations per source and
/// per 64 KiB chunk, not guest calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct IoCounters {
    /// Read operations.
    pub reads: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Write operations.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// The accounting line: `"%.2f %.2f %ld %ld %ld %ld %ld %ld %ld %ld"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Accounting {
    /// System CPU time of the whole process (field 1).
    pub system_cpu: Duration,
    /// User CPU time of the whole process (field 2).
    pub user_cpu: Duration,
    /// Files, character devices, pipes (fields 3–6).
    pub local: IoCounters,
    /// tcp sources (fields 7–10).
    pub network: IoCounters,
}

/// Seconds with two decimals, rounded half up at the centisecond. ZeroVM
/// printed clock ticks (1/100 s) divided by 100, which this reproduces
/// exactly for whole ticks.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let centis = (self.0.as_nanos() + 5_000_000) / 10_000_000;
        write!(f, "{}.{:02}", centis / 100, centis % 100)
    }
}

impl fmt::Display for Accounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, n) = (&self.local, &self.network);
        write!(
            f,
            "{} {} {} {} {} {} {} {} {} {}",
            Seconds(self.system_cpu),
            Seconds(self.user_cpu),
            l.reads,
            l.bytes_read,
            l.writes,
            l.bytes_written,
            n.reads,
            n.bytes_read,
            n.writes,
            n.bytes_written
        )
    }
}

/// One etag-enabled channel's digest (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelEtag {
    /// The channel alias.
    pub alias: String,
    /// Hex digest of every byte read and written through it.
    pub digest: String,
}

/// The pseudo-alias of the memory etag.
pub const MEMORY_ETAG_ALIAS: &str = "/dev/memory";

/// Everything the report says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Line 1.
    pub validation: Validation,
    /// Line 2: `1` only in the report of the session that became a daemon.
    pub daemon: bool,
    /// Line 3: the program's exit code (0 if it never exited explicitly).
    pub user_code: i32,
    /// Line 4: etag-enabled channels in unmount order (local channels in
    /// handle order, then network writers, then network readers).
    pub etags: Vec<ChannelEtag>,
    /// Line 4, last pair: `/dev/memory <digest>` when `Memory = …,1`.
    pub memory_etag: Option<String>,
    /// Line 5.
    pub accounting: Accounting,
    /// Line 6: `ok` or the first error; `None` prints [`UNKNOWN_STATE`].
    pub exit_state: Option<String>,
}

impl Report {
    /// The etag line: `alias digest` pairs separated by spaces, or `disable`.
    pub fn etag_line(&self) -> String {
        let memory = self.memory_etag.as_deref().map(|d| (MEMORY_ETAG_ALIAS, d));
        let pairs: Vec<String> = self
            .etags
            .iter()
            .map(|e| (e.alias.as_str(), e.digest.as_str()))
            .chain(memory)
            .map(|(alias, digest)| format!("{alias} {digest}"))
            .collect();
        if pairs.is_empty() {
            ETAG_DISABLED.to_string()
        } else {
            pairs.join(" ")
        }
    }

    fn render_with(&self, eol: &str) -> String {
        let state = self.exit_state.as_deref().unwrap_or(UNKNOWN_STATE);
        // The seventh, empty field is where DEBUG builds put the command line.
        format!(
            "{v}{eol}{d}{eol}{u}{eol}{e}{eol}{a}{eol}{state}{eol}{eol}",
            v = self.validation as i32,
            d = u8::from(self.daemon),
            u = self.user_code,
            e = self.etag_line(),
            a = self.accounting,
        )
    }

    /// The report as zerovm prints it on stdout (`-t0`): seven `\n`-ended
    /// lines, the last one empty.
    pub fn render(&self) -> String {
        self.render_with("\n")
    }

    /// The report as one syslog message (`-t1`): the same fields each
    /// followed by `"; "`.
    pub fn render_syslog(&self) -> String {
        self.render_with("; ")
    }

    /// The report as a daemon session writes it back on the Job connection
    /// (`-t3`): `0x%06x` (the report length in hex) then the report.
    pub fn render_socket(&self) -> String {
        let report = self.render();
        format!("0x{:06x}{report}", report.len())
    }
}

/// How a session ended; gives the exit-state line and zerovm's exit code.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ending {
    /// The program exited (`proc_exit(code)`, `zvm_exit`, or `_start`
    /// returned): state `ok`, zerovm exits 0 whatever the user code.
    Exited,
    /// `-F`: stopped after setup, before user code: state `ok`, exit 0.
    Prevalidated,
    /// The `Timeout` expired: `session timeout`, EINTR.
    Timeout,
    /// A wasm trap (out-of-bounds, unreachable, stack overflow…): replaces
    /// ZeroVM's "Signal N from untrusted code" (§13.5): `wasm trap: <kind>`, EINTR.
    Trap(String),
    /// The module did not validate: `validation failed`, ENOEXEC.
    ValidationFailed,
    /// Any other failure: ZeroVM's errno and message (manifest and channel
    /// errors, memory, channel I/O, `<alias>;<n> corrupted upon eof` with
    /// EPIPE, …). An empty message prints [`UNKNOWN_STATE`].
    Failed {
        /// zerovm's exit code.
        errno: i32,
        /// The exit-state line.
        message: String,
    },
}

impl Ending {
    /// zerovm's exit status (§7.2): 0 after the program exited (any code) or
    /// `-F`, otherwise the errno of the first failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Exited | Ending::Prevalidated => 0,
            Ending::Timeout | Ending::Trap(_) => errno::EINTR,
            Ending::ValidationFailed => errno::ENOEXEC,
            Ending::Failed { errno, .. } => *errno,
        }
    }

    /// Report line 6.
    pub fn exit_state(&self) -> String {
        match self {
            Ending::Exited | Ending::Prevalidated => OK_STATE.to_string(),
            Ending::Timeout => TIMEOUT_STATE.to_string(),
            Ending::Trap(kind) => format!("wasm trap: {kind}"),
            Ending::ValidationFailed => VALIDATION_FAILED_STATE.to_string(),
            Ending::Failed { message, .. } if message.is_empty() => UNKNOWN_STATE.to_string(),
            Ending::Failed { message, .. } => message.clone(),
        }
    }
}

impl From<&ManifestError> for Ending {
    fn from(e: &ManifestError) -> Self {
        Ending::Failed {
            errno: e.errno(),
            message: e.to_string(),
        }
    }
}

impl From<ManifestError> for Ending {
    fn from(e: ManifestError) -> Self {
        Ending::from(&e)
    }
}

/// zvsh's exit code (§11): the user return code OR'ed with zerovm's exit
/// status shifted left by 4; with `--zvm-getrc`, zerovm's status alone. The
/// operating system keeps the low 8 bits when the process exits.
pub fn zvsh_exit_code(user_code: i32, zerovm_status: i32, getrc_only: bool) -> i32 {
    if getrc_only {
        zerovm_status
    } else {
        user_code | (zerovm_status << 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Manifest;

    fn ok_report() -> Report {
        Report {
            validation: Validation::Validated,
            daemon: false,
            user_code: 0,
            etags: vec![],
            memory_etag: None,
            accounting: Accounting {
                system_cpu: Duration::from_millis(0),
                user_cpu: Duration::from_millis(10),
                local: IoCounters {
                    reads: 3,
                    bytes_read: 16,
                    writes: 2,
                    bytes_written: 26,
                },
                network: IoCounters::default(),
            },
            exit_state: Some(Ending::Exited.exit_state()),
        }
    }

    #[test]
    fn golden_spec_example() {
        assert_eq!(
            ok_report().render(),
            "0\n0\n0\ndisable\n0.00 0.01 3 16 2 26 0 0 0 0\nok\n\n"
        );
    }

    #[test]
    fn golden_with_etags_memory_daemon_and_failure() {
        let report = Report {
            validation: Validation::NotValidated,
            daemon: true,
            user_code: -3,
            etags: vec![
                ChannelEtag {
                    alias: "/dev/stdout".into(),
                    digest: "d41d8cd98f00b204e9800998ecf8427e".into(),
                },
                ChannelEtag {
                    alias: "/dev/out/x".into(),
                    digest: "0cc175b9c0f1b6a831c399e269772661".into(),
                },
            ],
            memory_etag: Some("92eb5ffee6ae2fec3ad71c777531578f".into()),
            accounting: Accounting {
                system_cpu: Duration::from_millis(1234),
                user_cpu: Duration::from_secs(12),
                local: IoCounters {
                    reads: 16,
                    bytes_read: 1 << 20,
                    writes: 1,
                    bytes_written: 5,
                },
                network: IoCounters {
                    reads: 1,
                    bytes_read: 2,
                    writes: 3,
                    bytes_written: 4,
                },
            },
            exit_state: Some("MANIFEST 3: invalid manifest version".into()),
        };
        assert_eq!(
            report.render(),
            "2\n1\n-3\n\
             /dev/stdout d41d8cd98f00b204e9800998ecf8427e /dev/out/x 0cc175b9c0f1b6a831c399e269772661 /dev/memory 92eb5ffee6ae2fec3ad71c777531578f\n\
             1.23 12.00 16 1048576 1 5 1 2 3 4\n\
             MANIFEST 3: invalid manifest version\n\n"
        );
    }

    #[test]
    fn memory_etag_alone() {
        let report = Report {
            memory_etag: Some("ab".into()),
            ..ok_report()
        };
        assert_eq!(report.etag_line(), "/dev/memory ab");
    }

    #[test]
    fn missing_state_is_unknown_error() {
        let report = Report {
            exit_state: None,
            ..ok_report()
        };
        assert!(report.render().ends_with("\nunknown error, see syslog\n\n"));
    }

    #[test]
    fn syslog_and_socket_forms() {
        assert_eq!(
            ok_report().render_syslog(),
            "0; 0; 0; disable; 0.00 0.01 3 16 2 26 0 0 0 0; ok; ; "
        );
        let text = ok_report().render();
        assert_eq!(text.len(), 46);
        assert_eq!(ok_report().render_socket(), format!("0x00002e{text}"));
    }

    #[test]
    fn zerocloud_split_gives_six_fields() {
        // ZeroCloud parses the report with split('\n', 5).
        let text = ok_report().render();
        let fields: Vec<&str> = text.splitn(6, '\n').collect();
        assert_eq!(
            fields,
            [
                "0",
                "0",
                "0",
                "disable",
                "0.00 0.01 3 16 2 26 0 0 0 0",
                "ok\n\n"
            ]
        );
    }

    #[test]
    fn cpu_seconds_round_half_up_at_centiseconds() {
        let table: &[(u64, &str)] = &[
            (0, "0.00"),
            (4_999_999, "0.00"),
            (5_000_000, "0.01"),
            (10_000_000, "0.01"),
            (994_999_999, "0.99"),
            (995_000_000, "1.00"),
            (3_600_000_000_000, "3600.00"),
        ];
        for (nanos, want) in table {
            assert_eq!(Seconds(Duration::from_nanos(*nanos)).to_string(), *want);
        }
        let max = Accounting {
            local: IoCounters {
                reads: u64::MAX,
                ..IoCounters::default()
            },
            ..Accounting::default()
        };
        assert_eq!(
            max.to_string(),
            format!("0.00 0.00 {} 0 0 0 0 0 0 0", u64::MAX)
        );
    }

    #[test]
    fn exit_codes_and_states() {
        let table: Vec<(Ending, i32, &str)> = vec![
            (Ending::Exited, 0, "ok"),
            (Ending::Prevalidated, 0, "ok"),
            (Ending::Timeout, errno::EINTR, "session timeout"),
            (
                Ending::Trap("unreachable".into()),
                errno::EINTR,
                "wasm trap: unreachable",
            ),
            (
                Ending::ValidationFailed,
                errno::ENOEXEC,
                "validation failed",
            ),
            (
                Ending::Failed {
                    errno: errno::EPIPE,
                    message: "/dev/in/a;0 corrupted upon eof".into(),
                },
                errno::EPIPE,
                "/dev/in/a;0 corrupted upon eof",
            ),
            (
                Ending::Failed {
                    errno: errno::EIO,
                    message: String::new(),
                },
                errno::EIO,
                UNKNOWN_STATE,
            ),
        ];
        for (ending, code, state) in table {
            assert_eq!(ending.exit_code(), code, "{ending:?}");
            assert_eq!(ending.exit_state(), state, "{ending:?}");
        }
    }

    #[test]
    fn manifest_errors_become_endings() {
        let e = Manifest::parse(b"Version = 1\n").unwrap_err();
        let ending = Ending::from(&e);
        assert_eq!(ending.exit_code(), errno::EFAULT);
        assert_eq!(ending.exit_state(), "MANIFEST 1: invalid manifest version");
        let e = Manifest::parse(b"").unwrap_err();
        assert_eq!(Ending::from(e).exit_state(), "Timeout not specified");
    }

    #[test]
    fn zvsh_exit_code_combines_user_and_zerovm_codes() {
        assert_eq!(zvsh_exit_code(0, 0, false), 0);
        assert_eq!(zvsh_exit_code(3, 0, false), 3);
        assert_eq!(zvsh_exit_code(1, errno::EFAULT, false), 1 | (14 << 4));
        assert_eq!(zvsh_exit_code(1, errno::EFAULT, true), 14);
    }
}
